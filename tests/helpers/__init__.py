"""What tests in several folders share: fake data, the in-process CLI runner, small networks."""
