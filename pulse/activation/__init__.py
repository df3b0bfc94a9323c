"""Activation: publishing the profiles and audiences as a snapshot (``publish``, with the consent counts of
``consent``) and serving the published snapshot over HTTP (``serve``)."""
