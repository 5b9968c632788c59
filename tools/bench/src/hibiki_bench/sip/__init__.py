"""A SIP caller and a bare SIP answerer (PJSIP, one endpoint per process) and an RTP packet tap."""
