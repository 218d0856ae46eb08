"""Fake broker servers that speak the real wire protocols on 127.0.0.1, so the real SDKs run end
to end in tests without the internet."""
