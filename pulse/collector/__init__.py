"""First-party collection: the tracker (``static/pulse.js``), the demo shop (``site/``) and ``pulse collect``,
an HTTP collector whose acknowledgement means the events are on disk. See docs/collection.md."""
