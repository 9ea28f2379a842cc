"""Where a model's cost goes: per-op profiles (instructions, time, MAC/instr) of a .tflite.

`graph` reads a .tflite's ops, shapes and MACs and cuts it after each op (prefix models);
`ops` turns per-prefix measurements into per-op rows against each core's int8 limit;
`run` measures them on a target; `render` writes Markdown and a bar chart.
"""
