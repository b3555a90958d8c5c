"""A local stand-in for the FaceSign API: sessions, a hosted verification page, signed webhooks, fault knobs."""
