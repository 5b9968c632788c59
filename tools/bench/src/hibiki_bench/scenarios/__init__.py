"""One module per pipeline; each measures against a baseline taken in the same run on the same broker."""
