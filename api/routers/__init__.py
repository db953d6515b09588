"""Thin routers: parse, check the caller, call one use case, return."""
