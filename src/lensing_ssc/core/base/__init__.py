"""Foundations shared by every area: the exception tree."""
