"""balloond_lib - the parts of tools/balloond: policy (pure decisions),
config (the INI file), host (headroom and PSI), guests (QMP / libvirt and
discovery), daemon (the loop). Each module's docstring states its contract."""
