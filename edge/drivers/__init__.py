"""Protocol drivers, one module per protocol library; each raises only ``edge.errors``.

Nothing is re-exported here on purpose: importing ``edge.drivers.modbus`` must not load
bacpypes3 (~0.35 s) and ``edge.drivers.bacnet`` must not load pymodbus. Import the
driver module you need.
"""
