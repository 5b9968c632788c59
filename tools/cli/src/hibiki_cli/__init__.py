"""hibiki: the operators' command-line console."""
