"""Image and video I/O that is not a format check: container headers, metadata carried
from input to output, writers that encode an image a strip at a time."""
