"""Reports of signed-off reviews: the structured draft, HL7 v2 ORU^R01 over MLLP, FHIR R4 DiagnosticReport."""
