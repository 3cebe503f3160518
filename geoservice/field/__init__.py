"""The field side's work (issue 18): patrols (巡查) and their weekly coverage of the grids."""
