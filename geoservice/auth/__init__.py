"""Who is calling, and what they may do: users, passwords, tokens, per-route role policies, scope."""
