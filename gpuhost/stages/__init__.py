"""Deploy stages: functions that add one stage's operations for the current host."""
