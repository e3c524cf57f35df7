"""The data side of reachprobe: storage, export and patterns (never imports socket/httpx/scapy)."""
