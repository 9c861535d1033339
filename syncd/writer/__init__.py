"""Follow-ups: planned from violations into the outbox, then delivered by channel writers."""
