"""Measuring energy: sources/ read the box's power, sampler.py polls them, meter.py integrates
windows, work_share.py shares overlap by work, energy_error.py bounds each row's error,
thermal.py reads temperatures, sysfs.py reads files under a movable root."""
