"""Test, demo and benchmark harness for promoter.

Everything here exists so tests can exercise promoter against real servers on 127.0.0.1 rather
than against mocks: a real Distribution registry (``registry``), the token server that registry
trusts (``token_server``), a fault-injecting reverse proxy (``fault_proxy``) and builders plus an
independent pusher for seeding registries with known images (``images``), all on top of a
stoppable loopback HTTP server (``loopback_http``). None of it imports promoter, so a bug in
promoter cannot hide itself by also breaking the fixtures.
"""
