"""What the gateway and the workers must agree on beyond task names and payloads."""
