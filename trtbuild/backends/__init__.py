"""Engine backends behind one protocol (`base.Backend`), registered by name (`registry`)."""
