{
  "targets": [
    {
      "target_name": "tftp_pump",
      "sources": ["native/tftp_pump.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "conditions": [["OS!='linux'", {"type": "none"}]]
    }
  ]
}
