"""What a read computes from stored rows: n-step returns, GAE, the env axis and numpy -> torch."""
