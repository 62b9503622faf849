"""Tests against a Supabase-shaped API on loopback: real PostgREST, a gateway, local Storage
(see stack.py). The stack starts once per session; ``supabase_stack`` yields it."""
