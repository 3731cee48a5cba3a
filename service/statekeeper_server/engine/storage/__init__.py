"""Storage: the Backend contract and the memory, file and Redis backends."""
