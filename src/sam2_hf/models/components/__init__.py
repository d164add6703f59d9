"""The nn.Modules of SAM 2, one component per file."""
