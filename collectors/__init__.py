"""Sources → store. Every collector implements :class:`collectors.base.Collector`."""
