"""What the office answers: orders for customer service, the site board, the site reports."""
