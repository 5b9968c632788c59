"""Simulated telephony platform for Hibiki: callers that dial, listen, key digits and hang up."""
