"""Cost on the board: latency, memory, instructions per invoke and per op, peers, frames."""
