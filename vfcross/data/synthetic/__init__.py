"""The embedded synthetic population: identities, face and voice rendering, the dataset writer."""
