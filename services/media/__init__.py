"""Image and video I/O shared by the gateway and the workers: header-first checks and
decoding (``images``, ``video``, ``heif``, ``completeness``), metadata carried from input to
output (``metadata``) and encoders that write a strip at a time (``writers``).

No stores and no network: bytes and arrays in, bytes and arrays out."""
