"""gpuhost's own pyinfra operations (generators of commands, like pyinfra.operations.*)."""
