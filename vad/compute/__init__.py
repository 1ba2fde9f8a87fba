"""Models and where they run: loading causal LMs from local files only (models), the device/dtype resolver (device) and the names the params may use (names)."""
