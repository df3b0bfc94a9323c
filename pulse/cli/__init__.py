"""The ``pulse`` command (``commands``; the console script is ``pulse.cli.commands:main``), the child-process
supervisor of `pulse ui` and `pulse live` (``supervisor``), the run summary (``summary``) and the maintenance
script of the event contract's copies (``contract_copies``). The one package of pulse that imports
``orchestration`` and Dagster; nothing imports it."""
