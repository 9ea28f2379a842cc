"""Importers that turn a team's real data into the edgeped dataset format.

`crops_csv` (a folder of crops + CSV), `coco` and `kitti` (full frames + boxes,
cut into proposal crops by `frames` using the window rules in `geometry`).
"""
