"""One construct per capability; ``stacks.stacks`` composes them into thin stacks."""
