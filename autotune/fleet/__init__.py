"""Many machines: a plan for an inventory, collection over Ray, node labels and a summary."""
