"""What the engine knows about the machine it trains on: today, how many CPU threads PyTorch may use."""
