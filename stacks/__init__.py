"""The CDK app's constructs (``stacks.constructs``), thin stacks (``stacks.stacks``) and context
(``stacks.config``). ``app.py`` calls ``stacks.stacks.build`` for the selected environment."""
