"""Signed webhooks (Standard Webhooks): endpoints per client, their targets' safety, signing and sending."""
