"""Preventive maintenance (六级保养): plans per asset or class, due work orders generated
ahead of time, maintenance windows, plans driven by run hours or meter readings."""
