"""Presentation helpers the pages share: the grid, the charts, labels, colours and text escaping."""
