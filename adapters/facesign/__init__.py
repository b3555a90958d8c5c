"""The FaceSign API: its HTTP client and the recovery flow file sent with each session."""
