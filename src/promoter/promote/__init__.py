"""Promotion plans (pure: wanted images + registry facts -> actions) and carrying them out."""
