"""`mt5recon report`: one self-contained HTML file (inline CSS and SVG, nothing fetched) with the
fleet's equity and drawdown, slippage, breaks and terminal health over a period; and the same
summary as markdown for the daily Prefect artifact."""
