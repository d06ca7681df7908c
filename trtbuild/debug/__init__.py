"""Debugging tools over a spec's cached graphs: `trtbuild debug ...`."""
