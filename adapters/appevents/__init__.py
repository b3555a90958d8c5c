"""Posting signed events to the customer's application."""
