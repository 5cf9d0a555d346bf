"""The asset register: equipment with model, supplier, install date, location and
maintenance cycle, linked to the devices that watch it."""
