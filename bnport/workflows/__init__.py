"""The public verbs (plan, port, convert, verify, explain, check_layer, inspect, the BatchNorm mapping), each calling
the framework adapters it needs when it runs; importing a workflow imports no framework."""
