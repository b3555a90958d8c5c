"""The recovery and reset pages: HTML, CSS and JS shipped as package data."""
