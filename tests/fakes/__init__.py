"""Local fake venues for the tests: servers that speak a real exchange's or broker's API on 127.0.0.1."""
