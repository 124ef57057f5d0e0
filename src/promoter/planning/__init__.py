"""Promotion plans: which images an environment needs and what must happen to each (``plan``, pure), the
registry facts that decide it (``lookup``), and carrying a plan out (``execute``)."""
