"""maaslab: the project lab (see README.md, section "The lab")."""
