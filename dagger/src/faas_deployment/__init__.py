"""faas-deployment: deployment pipeline of the FaaS platform (Dagger module + CLI)."""
